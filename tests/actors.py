from django.contrib.auth.models import Group, User

PASSWORD = "correct horse battery staple"


def make_user(username, *, group=None, superuser=False):
    user = User.objects.create_user(
        username=username, password=PASSWORD, is_superuser=superuser, is_staff=superuser
    )
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user
