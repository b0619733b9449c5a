# One MT5 gateway: MetaTrader 5 under Wine, in portable mode, with the Hybrid Trader bridge in front of it.
# ONE terminal, ONE live account at a time (deploy/mt5-gateway.md). Built by compose.mt5.yaml.
FROM debian:bookworm-slim

ENV DEBIAN_FRONTEND=noninteractive WINEPREFIX=/home/mt5/.wine WINEARCH=win64 WINEDEBUG=-all
RUN dpkg --add-architecture i386 \
 && apt-get update \
 && apt-get install -y --no-install-recommends wine wine64 wine32 xvfb xauth ca-certificates curl python3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --home-dir /home/mt5 mt5 \
 && mkdir -p /opt/mt5 /opt/bridge && chown mt5 /opt/mt5 /opt/bridge

USER mt5
WORKDIR /home/mt5

# Windows Python (the MetaTrader5 package is Windows-only) with the bridge's dependencies.
ARG PYTHON_VERSION=3.11.9
RUN curl -fsSL -o /tmp/python.exe "https://www.python.org/ftp/python/${PYTHON_VERSION}/python-${PYTHON_VERSION}-amd64.exe" \
 && xvfb-run -a wine /tmp/python.exe /quiet InstallAllUsers=0 Include_test=0 TargetDir='C:\Python' \
 && rm /tmp/python.exe \
 && xvfb-run -a wine 'C:\Python\python.exe' -m pip install --no-cache-dir MetaTrader5 "rpyc>=6,<7" numpy

# The terminal, installed once into the image; each container copies it to its own volume (portable mode).
ARG MT5_SETUP_URL=https://download.mql5.com/cdn/web/metaquotes.software.corp/mt5/mt5setup.exe
RUN curl -fsSL -o /tmp/mt5setup.exe "$MT5_SETUP_URL" \
 && xvfb-run -a wine /tmp/mt5setup.exe /auto \
 && rm /tmp/mt5setup.exe \
 && cp -r "$WINEPREFIX/drive_c/Program Files/MetaTrader 5" /home/mt5/mt5-image

# The bridge: only the market package of this repository (plain Python and numpy).
COPY --chown=mt5 domain/__init__.py /opt/bridge/domain/__init__.py
COPY --chown=mt5 domain/market /opt/bridge/domain/market

EXPOSE 18812
# MT5_BRIDGE_SECRET comes from the environment (compose); without it the bridge refuses to listen off loopback.
CMD ["sh", "-c", "[ -f /opt/mt5/terminal64.exe ] || cp -r /home/mt5/mt5-image/. /opt/mt5/; cd /opt/bridge && exec xvfb-run -a wine 'C:\\Python\\python.exe' -m domain.market.bridge_server --host 0.0.0.0 --port 18812 --terminal-path 'Z:\\opt\\mt5\\terminal64.exe'"]
