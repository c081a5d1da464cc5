from django.urls import path

from .consumers import LiveRoomConsumer, WorklistConsumer

websocket_urlpatterns = [
    path("ws/consult/worklist/", WorklistConsumer.as_asgi()),
    path("ws/consult/<str:session_id>/", LiveRoomConsumer.as_asgi()),
]
