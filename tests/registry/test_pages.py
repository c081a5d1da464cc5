from django.test import Client

from registry.models import AuditEvent


def test_sign_in_page_logs_in_and_shows_home(community):
    client = Client()
    page = client.get("/login/")
    assert page.status_code == 200
    assert 'lang="zh-hans"' in page.content.decode()
    response = client.post("/login/", {"username": "village_a", "password": "pw-village_a"})
    assert response.status_code == 302 and response["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert "东山村卫生室" in home.content.decode()
    assert AuditEvent.objects.filter(action="auth.sign_in", actor_username="village_a").exists()


def test_wrong_password_shows_a_message_and_no_session(community):
    client = Client()
    response = client.post("/login/", {"username": "village_a", "password": "bad"})
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()
    assert client.get("/").status_code == 302


def test_next_only_goes_to_this_site(community):
    client = Client()
    response = client.post(
        "/login/",
        {"username": "village_a", "password": "pw-village_a", "next": "https://evil.example/"},
    )
    assert response["Location"] == "/"


def test_sign_out_ends_the_session(community):
    client = Client()
    client.force_login(community.users["village_a"])
    assert client.get("/").status_code == 200
    client.post("/logout/")
    assert client.get("/")["Location"].startswith("/login/")
