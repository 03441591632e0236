# The app image: bot service and action server (Python 3.11, current libraries).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements/app.lock requirements/app.lock
# exact versions first (a layer of its own: it changes only with the lock), then the project
RUN pip install --no-cache-dir --no-deps -r requirements/app.lock
COPY pyproject.toml README.md NOTICE ./
COPY common common
COPY bot bot
COPY storage storage
COPY dialogues dialogues
COPY locales locales
COPY data data
RUN pip install --no-cache-dir --no-deps . && pip check && pybabel compile -d locales -D messages
RUN useradd --system --home /app barri
USER barri
ENV LOCALES_DIR=/app/locales NEIGHBOURHOODS_GEOJSON=/app/data/barcelona-barris.geojson GAZETTEER_DIR=/app/data
EXPOSE 8080 5055
CMD ["barri", "serve"]
