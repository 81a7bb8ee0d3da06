"""Delivery of notifications: the asyncio sender (sender.py) and the network calls it makes in
threads (transport.py).  The outbox it drains is desktop/store/outbox.py."""
