"""One Alembic revision a file, ``vNNNN_<what>.py``, frozen once released."""
