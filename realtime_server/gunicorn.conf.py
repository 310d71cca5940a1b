"""gunicorn settings for the realtime server (Cloud Run and `nox -s dev` alike).

Command-line options override these (devstack passes ``--bind 127.0.0.1:<port>``).
"""

import os

# eventlet (default) or gevent; app.py reads the same variable. gunicorn 26 removed the
# eventlet worker, hence `gunicorn>=22,<26` in requirements.txt; gevent works on any version.
worker_class = os.environ.get("VALORIZE_REALTIME_WORKER", "eventlet")
# One process per instance: Socket.IO sessions live in process memory, and the long-polling
# requests of one session must reach the process that holds it. Scale with instances.
workers = 1
# Simultaneous connections per instance. Cloud Run admits up to its concurrency setting
# (1000); a polling client can have two requests open, hence the margin.
worker_connections = int(os.environ.get("VALORIZE_REALTIME_CONNECTIONS", "2000"))
bind = f"0.0.0.0:{os.environ.get('PORT', '8080')}"
# Cloud Run gives 10 s between SIGTERM and SIGKILL; close sockets before that, so clients
# see a clean disconnect and reconnect to another instance at once.
graceful_timeout = 8
# Access logs would be one line per long-poll; connections are logged by the app instead.
accesslog = None
errorlog = "-"
# gunicorn 25's runtime control socket sits at one path per user: two instances on one
# machine (the local stack) would fight over it, and nothing here uses it.
control_socket_disable = True
loglevel = "info"
