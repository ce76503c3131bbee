"""The FastAPI example (``examples/fastapi/app.py``): the web demos on the asyncio client."""
