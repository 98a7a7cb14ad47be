#!/bin/sh
# Image layer "notify": the webhook receiver that stands in for a push/chat service.
set -eu
DEBIAN_FRONTEND=noninteractive apt-get -qq install -y notify-receiver >/dev/null
