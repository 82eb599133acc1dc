"""`manage.py ensure_superuser` (run by `make run`): never a default password. The password given is used;
with none, one machine gets a random password shown once, a deployment is told how to make a superuser."""

from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db


@pytest.fixture
def ensure(settings):
    def run(**overrides):
        for name, value in {"SUPERUSER_USERNAME": "admin", "SUPERUSER_PASSWORD": None, **overrides}.items():
            setattr(settings, name, value)
        out = StringIO()
        call_command("ensure_superuser", stdout=out)
        return out.getvalue()

    return run


def superusers():
    return list(get_user_model().objects.filter(is_superuser=True).values_list("username", flat=True))


def test_on_one_machine_it_makes_a_random_password_and_shows_it_only_the_first_time(ensure):
    said = ensure(EMBEDDED_SERVICES=True)
    first_line = said.splitlines()[0]
    assert first_line.startswith("Created superuser 'admin' with the password ")
    password = first_line.rsplit(" ", 1)[1]
    assert len(password) >= 16 and password != "admin"
    assert authenticate(username="admin", password=password) is not None
    assert "changepassword admin" in said

    assert ensure(EMBEDDED_SERVICES=True) == ""  # the next start: nothing made, nothing shown
    assert superusers() == ["admin"]


def test_each_machine_gets_its_own_password(ensure, django_user_model):
    first = ensure(EMBEDDED_SERVICES=True).splitlines()[0].rsplit(" ", 1)[1]
    django_user_model.objects.all().delete()
    second = ensure(EMBEDDED_SERVICES=True).splitlines()[0].rsplit(" ", 1)[1]
    assert first != second


def test_a_deployment_without_a_password_gets_instructions_not_a_superuser(ensure):
    said = ensure(EMBEDDED_SERVICES=False)
    assert superusers() == []
    assert "No superuser exists. Create one with `python manage.py createsuperuser`" in said


def test_the_given_password_is_used_and_an_existing_user_left_alone(ensure):
    said = ensure(
        EMBEDDED_SERVICES=False, SUPERUSER_USERNAME="root-of-trust", SUPERUSER_PASSWORD="s3cret-enough"
    )
    assert said == "Created superuser 'root-of-trust' with the password in DJANGO_SUPERUSER_PASSWORD.\n"
    assert authenticate(username="root-of-trust", password="s3cret-enough") is not None

    again = ensure(
        EMBEDDED_SERVICES=False, SUPERUSER_USERNAME="root-of-trust", SUPERUSER_PASSWORD="another-one"
    )
    assert again == "Superuser 'root-of-trust' exists.\n"
    assert authenticate(username="root-of-trust", password="s3cret-enough") is not None  # not changed


def test_with_a_superuser_already_there_nothing_is_made(ensure, django_user_model):
    django_user_model.objects.create_superuser("olga", password="her-own-password")
    assert ensure(EMBEDDED_SERVICES=True) == "" and ensure(EMBEDDED_SERVICES=False) == ""
    assert superusers() == ["olga"]
