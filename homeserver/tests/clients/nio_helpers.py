"""What the matrix-nio scenarios share: registering a user, long-polling /sync until something
holds, and closing clients."""

from nio import AsyncClient
from nio.responses import SyncResponse

PASSWORD = "correct horse battery"


async def registered(server, name):
    client = AsyncClient(server.base_url, name)
    response = await client.register(name, PASSWORD, device_name=f"{name}'s nio")
    assert response.user_id == f"@{name}:localhost", response
    return client


async def sync_until(client, predicate, attempts=20):
    """Long-polls until `predicate(response)` holds; returns that response."""
    for _ in range(attempts):
        response = await client.sync(timeout=5000, full_state=False)
        assert isinstance(response, SyncResponse), response
        if predicate(response):
            return response
    raise AssertionError("condition not reached through /sync")


async def close_all(*clients):
    for client in clients:
        await client.close()
