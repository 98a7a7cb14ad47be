#!/bin/sh
# Image layer "web": the application, the nginx stand-in and the OpenSSL stand-in at their
# initial versions (LAB_INITIAL: "pkg=ver pkg=ver ...").
set -eu
DEBIAN_FRONTEND=noninteractive apt-get -qq install -y $LAB_INITIAL nginx >/dev/null
