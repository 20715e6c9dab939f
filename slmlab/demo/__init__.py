"""Demo-data generators: the bundled demo agent logs (`synth`) and the planted-secrets corpus (`planted`).

They are not part of any pipeline step; tests, benchmarks and the demo run use them."""
