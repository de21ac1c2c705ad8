"""Live operations on shared infrastructure: the event stream on NATS JetStream (``broker``) and the workers
that decide on it and record on the PostgreSQL operational store (``worker``)."""
