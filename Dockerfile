# The fnscope image used by compose.yaml for the collector, processor and api roles.
# Built from the wheel, so the image holds exactly what `pip install fnscope` installs (tests/test_layout.py
# checks the wheel: one `fnscope` package with every module, the console's files and the provisioning files).
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:3.11-slim
COPY --from=wheel /dist/ /dist/
RUN pip install --no-cache-dir /dist/fnscope-*.whl && rm -r /dist && useradd --system fnscope
USER fnscope
ENTRYPOINT ["fnscope"]
CMD ["--help"]
