"""`{% load addresses %}`: addresses and domain names as people read them. International names are stored in
ASCII (punycode, dockspace.canonical); pages show them in their own letters."""

from django import template

from dockspace.canonical import unicode_address as _unicode_address

register = template.Library()


@register.filter
def unicode_address(value):
    """{{ "anna@xn--bcher-kva.de"|unicode_address }} -> anna@bücher.de (a domain or '@domain' alike)."""
    return _unicode_address(value)
