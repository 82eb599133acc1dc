import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEV_DEFAULT_USERNAME = "admin"
DEV_DEFAULT_PASSWORD = "admin"


class Command(BaseCommand):
    help = "Create the superuser from DJANGO_SUPERUSER_USERNAME/PASSWORD if it does not exist (idempotent)."

    def handle(self, *args, **options):
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME") or DEV_DEFAULT_USERNAME
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        using_default = not password
        password = password or DEV_DEFAULT_PASSWORD
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"Superuser {username!r} exists.")
            return
        User.objects.create_superuser(username=username, email="", password=password)
        note = f" with the development password {password!r}" if using_default else ""
        self.stdout.write(f"Created superuser {username!r}{note}.")
