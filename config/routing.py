from django.urls import path

from consult.routing import websocket_urlpatterns as consult_websockets
from registry.consumers import NotificationConsumer

websocket_urlpatterns = [
    path("ws/notifications/", NotificationConsumer.as_asgi()),
    *consult_websockets,
]
