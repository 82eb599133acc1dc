def test_health_answers_without_auth_or_database(client):
    # No `db` fixture: pytest-django raises if the view touched the database.
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"


def test_health_rejects_other_methods(client):
    assert client.post("/health").status_code == 405
