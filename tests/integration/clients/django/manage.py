#!/usr/bin/env python3
"""Django's manage.py for the minimal project that test_clients.py runs Django's test runner on through pgwarden."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pgwtest.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
