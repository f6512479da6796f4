// django-celery-beat's periodic task form: show a crontab in words next to the crontab field.
// Moved out of its template so the Content-Security-Policy can forbid inline scripts.
"use strict";
(function ($) {
  $(function () {
    const readableCrontabs = JSON.parse($("#readable-crontabs").text());
    const originalCrontabHelp = JSON.parse($("#crontab-help").text());
    const help = $(".field-crontab .help");
    $(".field-crontab_translation").hide();
    $(".field-crontab").change(function () {
      help.text(originalCrontabHelp);
      help.append($("<br>"), document.createTextNode("Translation: " + readableCrontabs[$("#id_crontab").val()]));
    });
  });
})(django.jQuery);
