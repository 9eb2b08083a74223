"""The API tokens page: each user creates, lists and revokes their own tokens; admins see and
revoke every user's. The plaintext is shown once, on the answer to its creation."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.models import ApiToken, Capability
from accounts.permissions import can, requires
from accounts.token_forms import TokenForm
from accounts.tokens import issue_token, revoke_token
from audit.models import Source


def _tokens_of(user) -> QuerySet[ApiToken]:
    """The tokens the user manages: their own, or every user's for an admin."""
    tokens = ApiToken.objects.select_related("user")
    return tokens if can(user, Capability.ADMINISTER) else tokens.filter(user=user)


@never_cache
@requires(Capability.READ)
def token_list(request: HttpRequest) -> HttpResponse:
    form, issued, status = TokenForm(), None, 200
    if request.method == "POST":
        form = TokenForm(request.POST)
        if form.is_valid():
            issued = issue_token(request.user, actor=request.user, source=Source.WEB, **form.cleaned_data)
            form = TokenForm()
        else:
            status = 400
    ctx = {
        "form": form,
        "issued": issued,
        "page": Paginator(_tokens_of(request.user), 50).get_page(request.GET.get("page")),
        "all_users": can(request.user, Capability.ADMINISTER),
    }
    return render(request, "accounts/tokens.html", ctx, status=status)


@require_POST
@requires(Capability.READ)
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(_tokens_of(request.user), pk=pk)
    if revoke_token(token, actor=request.user, source=Source.WEB):
        messages.success(request, f"Token {token.prefix}… ({token.name}) revoked.")
    else:
        messages.info(request, f"Token {token.prefix}… ({token.name}) was already revoked.")
    return redirect("token-list")
