"""The notes app's model."""
from django.db import models


class Note(models.Model):
    owner = models.CharField(max_length=40, db_index=True)
    slug = models.CharField(max_length=80, unique=True)
    body = models.TextField(blank=True)
    version = models.IntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
