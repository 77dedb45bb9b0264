"""The suite's shared helpers: loopback servers (emulator checks, raw and scripted HTTP
servers, redis-server, uvicorn in a thread), stream helpers, free ports, base64 backends."""
