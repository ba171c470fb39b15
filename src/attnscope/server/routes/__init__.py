"""The server's routes, one module per area; each module's ``router(host)`` gives its ``APIRouter``."""
