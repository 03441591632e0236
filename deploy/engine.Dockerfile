# The engine image: Rasa Open Source 3.6.21 with Barri's NLU component and a model trained at build.
FROM rasa/rasa:3.6.21-full
WORKDIR /app
USER root
COPY nlu nlu
COPY dialogues/domain dialogues/domain
COPY dialogues/rules dialogues/rules
COPY dialogues/stories dialogues/stories
COPY dialogues/credentials.yml dialogues/credentials.yml
ENV PYTHONPATH=/app
RUN rasa train --config nlu/config.yml --domain dialogues/domain \
      --data nlu/en nlu/es nlu/ca nlu/regex.yml nlu/lexicon_features.yml dialogues/rules dialogues/stories \
      --out /app/models --fixed-model-name barri
USER 1001
EXPOSE 5005
# `rasa` with the API token read from RASA_TOKEN instead of the command line (nlu/serve.py)
ENTRYPOINT ["python", "-m", "nlu.serve"]
CMD ["run", "--enable-api", "--port", "5005", "--model", "/app/models/barri.tar.gz", \
     "--endpoints", "/app/config/endpoints.yml", "--credentials", "/app/dialogues/credentials.yml"]
