import httpx


def test_live_answers_without_database(live_ogem):
    response = httpx.get(f"{live_ogem.url}/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_checks_database_and_cache(live_ogem, settings):
    response = httpx.get(f"{live_ogem.url}/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"] == "ok"
    assert body["failed"] == []
