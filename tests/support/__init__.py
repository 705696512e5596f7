"""What the tests share: paths to the shared data, real servers (RTSP, MQTT, HTTP), media makers."""
