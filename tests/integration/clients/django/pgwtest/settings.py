"""Settings as JupyterHealth Exchange sets them for a transaction pooler: verify-full TLS, no server-side cursors."""
import os

SECRET_KEY = "pgwarden-test-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "notes"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "app",
        "USER": "alice",
        "PASSWORD": os.environ["PGW_PASSWORD"],
        "HOST": "localhost",
        "PORT": os.environ["PGW_PORT"],
        "CONN_MAX_AGE": 60,
        # A transaction pooler cannot keep a cursor open across transactions (DECLARE ... WITH HOLD).
        "DISABLE_SERVER_SIDE_CURSORS": True,
        "OPTIONS": {"sslmode": "verify-full", "sslrootcert": os.environ["PGW_CA"], "connect_timeout": 10},
        # pgwarden serves only the databases it is configured for: test_app exists beforehand (--keepdb).
        "TEST": {"NAME": "test_app"},
    }
}
