"""MQTT over WebSocket with the paho-mqtt client (Eclipse Paho, Python), for the Rust test
mqtt/websocket.rs: a device connects to ws://HOST:PORT/mqtt with its secret and publishes one
QoS 1 telemetry message; then the same with a wrong secret. Prints one JSON line."""

import json
import sys
import threading

import paho.mqtt.client as mqtt

host, port, device, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def attempt(client_id, password, publish):
    done, out = threading.Event(), {}
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        transport="websockets",
        protocol=mqtt.MQTTv311,
    )
    c.ws_set_options(path="/mqtt")
    c.username_pw_set(device, password)

    def on_connect(client, userdata, flags, reason_code, properties):
        out["connack"] = str(reason_code)
        if reason_code.is_failure or not publish:
            done.set()
            return
        info = client.publish(
            f"devices/{device}/telemetry", json.dumps({"pressure": 1.25}), qos=1
        )
        out["mid"] = info.mid

    def on_publish(client, userdata, mid, reason_code, properties):
        out["puback"] = mid
        done.set()

    c.on_connect, c.on_publish = on_connect, on_publish
    c.connect(host, port, keepalive=10)
    c.loop_start()
    out["answered"] = done.wait(10)
    c.disconnect()
    c.loop_stop()
    return out


print(
    json.dumps(
        {
            "good": attempt("paho-ws-1", secret, True),
            "bad": attempt("paho-ws-2", "wrong-secret", False),
        }
    )
)
