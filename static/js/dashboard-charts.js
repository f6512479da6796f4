// The dashboard's charts (history, mail traffic): each <table class="chart-data"> (time x series: hosts, or outcomes;
// rendered by the server and readable without JavaScript) drawn as a uPlot chart above it; the table stays, folded
// under "Data table". A column header's data-color, when set, is its line's colour.
(function () {
  "use strict";
  var COLORS = ["#417690", "#ba2121", "#2a7a2a", "#a86400", "#6f42c1", "#0b7285", "#d6336c", "#495057"];

  function readTable(table) {
    var headers = Array.prototype.slice.call(table.querySelectorAll("thead th"), 1);
    var hosts = headers.map(function (th) { return th.textContent.trim(); });
    var colors = headers.map(function (th, index) {
      return th.getAttribute("data-color") || COLORS[index % COLORS.length];
    });
    var data = [[]].concat(hosts.map(function () { return []; }));
    table.querySelectorAll("tbody tr").forEach(function (row) {
      data[0].push(Number(row.getAttribute("data-t")));
      row.querySelectorAll("td").forEach(function (cell, index) {
        var text = cell.textContent.trim();
        data[index + 1].push(text === "" ? null : Number(text));
      });
    });
    return { hosts: hosts, colors: colors, data: data };
  }

  function draw(figure) {
    var holder = figure.querySelector(".chart-table");
    var table = figure.querySelector("table.chart-data");
    if (!holder || !table || typeof uPlot === "undefined") {
      return;
    }
    var read = readTable(table);
    var plot = document.createElement("div");
    plot.className = "chart-plot";
    figure.insertBefore(plot, holder);
    var options = {
      width: Math.max(plot.clientWidth, 300),
      height: 200,
      series: [{}].concat(read.hosts.map(function (host, index) {
        return { label: host, stroke: read.colors[index], width: 1.5, spanGaps: true };
      })),
      axes: [{}, { label: table.getAttribute("data-unit"), size: 50 }],
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(max, 1)]; } } },
    };
    var chart = new uPlot(options, read.data, plot);
    var details = document.createElement("details");
    var summary = document.createElement("summary");
    summary.textContent = "Data table";
    details.appendChild(summary);
    figure.insertBefore(details, holder);
    details.appendChild(holder);
    window.addEventListener("resize", function () {
      chart.setSize({ width: Math.max(plot.clientWidth, 300), height: 200 });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("figure.chart").forEach(draw);
  });
})();
