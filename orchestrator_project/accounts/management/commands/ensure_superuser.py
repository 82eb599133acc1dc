import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Make sure someone can log in to the admin (idempotent; `make run` calls it). With "
        "DJANGO_SUPERUSER_PASSWORD: create DJANGO_SUPERUSER_USERNAME (default admin) with it unless that "
        "user exists. Without: when no superuser exists, create one with a random password printed this "
        "once (embedded servers, one machine), or print how to create one (a deployment). Never a default "
        "password."
    )

    def handle(self, *args, **options):
        User = get_user_model()
        username, password = settings.SUPERUSER_USERNAME, settings.SUPERUSER_PASSWORD
        if password:
            if User.objects.filter(username=username).exists():
                self.stdout.write(f"Superuser {username!r} exists.")
            else:
                User.objects.create_superuser(username=username, email="", password=password)
                self.stdout.write(
                    f"Created superuser {username!r} with the password in DJANGO_SUPERUSER_PASSWORD."
                )
            return
        if User.objects.filter(is_superuser=True).exists():
            return
        if not settings.EMBEDDED_SERVICES:
            # A deployment's database outlives this process: a password printed to its logs would sit
            # there for anyone who can read them.
            self.stdout.write(
                "No superuser exists. Create one with `python manage.py createsuperuser` (or set "
                "DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD, then run "
                "`python manage.py ensure_superuser`)."
            )
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(
            f"Created superuser {username!r} with the password {password}\n"
            f"  It is shown this once: note it now, or set another with "
            f"`.venv/bin/python manage.py changepassword {username}`."
        )
