"""Server-rendered pages of the registry: sign in, sign out, home."""

from __future__ import annotations

from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from .access import principal_for
from .auth import SecondFactorRequired, sign_in
from .errors import DomainError
from .models import Role


def _safe_next(request: HttpRequest, target: str) -> str:
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return "/"


@sensitive_post_parameters("password", "otp")
@require_http_methods(["GET", "POST"])
def sign_in_page(request: HttpRequest) -> HttpResponse:
    context = {"next": request.GET.get("next", ""), "username": "", "ask_otp": False}
    status = 200
    if request.method == "POST":
        username = request.POST.get("username", "")
        context.update(username=username, next=request.POST.get("next", ""))
        try:
            principal = sign_in(
                request=request,
                username=username,
                password=request.POST.get("password", ""),
                otp=request.POST.get("otp", ""),
            )
        except SecondFactorRequired as exc:
            context.update(error=exc.message, ask_otp=True)
            status = 401
        except DomainError as exc:
            context["error"] = exc.message
            status = exc.status_code
        else:
            login(request, principal.user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect(_safe_next(request, context["next"]))
    return render(request, "registry/login.html", context, status=status)


@require_POST
def sign_out_page(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("login")


@login_required
def home_page(request: HttpRequest) -> HttpResponse:
    principal = principal_for(request.user, request.GET.get("organisation"))
    context = {
        "principal": principal,
        "is_specialist": principal.has_role(Role.SPECIALIST, Role.COORDINATOR),
    }
    return render(request, "registry/home.html", context)
