"""An app with one model, exercised by Django's test runner through pgwarden in transaction mode."""
