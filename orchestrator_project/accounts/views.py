from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import ApiToken
from .serializers import TokenRequestSerializer, TokenResponseSerializer
from .throttles import TokenEndpointThrottle


class TokenView(APIView):
    """Exchange a username and password for an API token (send it as `Authorization: Bearer <token>`)."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [TokenEndpointThrottle]

    @extend_schema(
        request=TokenRequestSerializer,
        responses={
            201: TokenResponseSerializer,
            400: OpenApiResponse(description="Invalid body"),
            401: OpenApiResponse(description="Wrong credentials"),
            429: OpenApiResponse(description="Too many attempts"),
        },
        auth=[],
        tags=["auth"],
    )
    def post(self, request):
        body = TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = authenticate(
            request, username=body.validated_data["username"], password=body.validated_data["password"]
        )
        if user is None or not user.is_active:
            raise AuthenticationFailed("Invalid username or password.")
        token, raw = ApiToken.issue(user=user, name=body.validated_data["name"])
        return Response({"token": raw, "expires_at": token.expires_at}, status=status.HTTP_201_CREATED)

    def get_authenticate_header(self, request):
        return 'Bearer realm="api"'
