from django.urls import path

from accounts import security_views, views

app_name = "accounts"

urlpatterns = [
    path("", views.home, name="home"),
    path("setup/", views.setup, name="setup"),
    path("register/", views.register, name="register"),
    path("register/sent/", views.register_sent, name="register_sent"),
    path("register/confirm/<uidb64>/<token>/", views.register_confirm, name="register_confirm"),
    path("login/", views.sign_in, name="login"),
    path("login/code/", views.sign_in_code, name="sign_in_code"),
    path("login/verify/", views.verify_code, name="verify_code"),
    path("logout/", views.sign_out, name="logout"),
    path("password/reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password/reset/sent/",
        views.auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_sent.html"),
        name="password_reset_sent",
    ),
    path("password/reset/<uidb64>/<token>/", views.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path(
        "password/reset/done/",
        views.auth_views.PasswordResetCompleteView.as_view(template_name="accounts/password_reset_done.html"),
        name="password_reset_done",
    ),
    path("profile/", security_views.profile, name="profile"),
    path("profile/edit/", security_views.profile_edit, name="profile_edit"),
    path("security/", security_views.security, name="security"),
    path("security/confirm/", security_views.reauth, name="reauth"),
    path("security/password/", security_views.PasswordChangeView.as_view(), name="password_change"),
    path("security/totp/add/", security_views.totp_add, name="totp_add"),
    path("security/totp/confirm/", security_views.totp_confirm, name="totp_confirm"),
    path("security/devices/<str:kind>/<int:pk>/remove/", security_views.device_remove, name="device_remove"),
    path("security/backup-codes/", security_views.backup_codes, name="backup_codes"),
    path("security/sessions/<str:session_hash>/revoke/", security_views.session_revoke, name="session_revoke"),
    path("security/sessions/revoke-others/", security_views.sessions_revoke_others, name="sessions_revoke_others"),
    path("no-access/", views.no_access, name="no_access"),
]
