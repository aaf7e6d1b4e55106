"""Two tasks subscribed to one event: publishing it runs each of them once."""

import trio

from celery_actors import App

app = App("accounts")


@app.event
class UserRegistered:
    user_id: int
    email: str


@UserRegistered.subscribe
@app.task
async def send_welcome_email(user_id: int, email: str) -> str:
    return f"welcome mail sent to {email}"


@UserRegistered.subscribe
@app.task
async def notify_account_manager(user_id: int, email: str) -> str:
    return f"account manager told about user {user_id}"


async def main() -> None:
    async with app.local():
        event = await UserRegistered.delay(user_id=1, email="ada@example.com")
        for task, value in (await event.get(timeout=10)).items():
            print(f"{task.rsplit('.', 1)[1]}: {value}")


if __name__ == "__main__":
    trio.run(main)
