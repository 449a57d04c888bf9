"""Who may see Tidewater's pages: Airflow's logged-in users the auth manager lets read the page's custom view.

Airflow 3 mounts a plugin's FastAPI app as it is, without its own authentication, so every route of a plugin
depends on `reader(RESOURCE)`:
- the user is the one the api-server's REST API would see (`resolve_user_from_token`, the auth manager's JWT
  validation) on the bearer token of the Authorization header or, in the browser, the `_token` cookie the
  Airflow UI sets at login: 401 without one, 401/403 for an expired or invalid one;
- the auth manager must allow that user to read the custom view RESOURCE (``is_authorized_custom_view``, the
  auth managers' hook for plugins' views), else 403. SimpleAuthManager allows every role from viewer up; with
  the FAB or Keycloak auth manager, grant the permission (GET/"can read" on the resource) to the roles that
  may read it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

bearer = HTTPBearer(auto_error=False)


async def logged_in_user(request: Request,
                         credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]):
    """The Airflow user of the request; 401 without a token, 401/403 for an expired or invalid one."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    if credentials and credentials.scheme.lower() == "bearer":
        return await resolve_user_from_token(credentials.credentials)
    return await resolve_user_from_token(request.cookies.get(COOKIE_NAME_JWT_TOKEN))


def reader(resource: str) -> Callable[..., Awaitable[Any]]:
    """A FastAPI dependency: the user, if the auth manager lets them read the custom view `resource`; 403
    otherwise."""

    async def authorized(user: Annotated[Any, Depends(logged_in_user)]):
        from airflow.api_fastapi.app import get_auth_manager

        if not get_auth_manager().is_authorized_custom_view(method="GET", resource_name=resource, user=user):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"user {user.get_name()!r} may not read {resource!r}: "
                                                           "an admin grants it (SimpleAuthManager: any role)")
        return user

    return authorized
