"""OIDC endpoints, mounted at the site root (discovery must sit under the issuer URL).

The namespace is DOT's, because DOT reverses 'oauth2_provider:<name>' itself. DOT's own urls module
is not included: it would also mount client self-registration and the application-management pages.
"""

from django.urls import path, re_path
from oauth2_provider import views as dot_views

from oidc import resource_views, views

app_name = "oauth2_provider"

urlpatterns = [
    re_path(
        r"^\.well-known/openid-configuration/?$", views.DiscoveryView.as_view(), name="oidc-connect-discovery-info"
    ),
    path(".well-known/jwks.json", views.JwksView.as_view(), name="jwks-info"),
    path("oauth/authorize/", views.AuthorizationView.as_view(), name="authorize"),
    path("oauth/token/", views.TokenView.as_view(), name="token"),
    path("oauth/revoke/", views.RevokeTokenView.as_view(), name="revoke-token"),
    path("oauth/introspect/", resource_views.IntrospectView.as_view(), name="introspect"),
    path("oauth/userinfo/", dot_views.UserInfoView.as_view(), name="user-info"),
    path("oauth/logout/", views.LogoutView.as_view(), name="rp-initiated-logout"),
    path("oauth/mail-userinfo/", resource_views.MailTokenView.as_view(), name="mail-userinfo"),
]
