# The libFuzzer targets, by name: fuzz/<name>.cc, seeds in fuzz/corpus/<name>/.
set(MATBERT_FUZZ_NAMES arrow_ipc_fuzzer job_spec_fuzzer safetensors_fuzzer submit_job_fuzzer
    trainer_state_fuzzer)
