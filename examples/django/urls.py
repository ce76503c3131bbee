"""The Django example's URLs."""

from django.urls import path

from examples.django import views

urlpatterns = [
    path("", views.home),
    path("upload", views.upload),
    path("images/<str:image_id>", views.image),
]
