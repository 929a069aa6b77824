"""A minimal Django project whose database is reached through pgwarden."""
