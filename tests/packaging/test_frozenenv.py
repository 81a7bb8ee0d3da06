"""worker.frozenenv with plain values (runs in the quick suite, no build needed)."""

from worker.frozenenv import for_external_program


def test_restores_a_search_path_the_bootloader_prefixed():
    env = {
        "LD_LIBRARY_PATH": "/tmp/_MEI123:/opt/lib",
        "LD_LIBRARY_PATH_ORIG": "/opt/lib",
        "PATH": "/usr/bin",
    }
    assert for_external_program(env) == {"LD_LIBRARY_PATH": "/opt/lib", "PATH": "/usr/bin"}


def test_removes_a_search_path_that_was_not_set_before():
    env = {"LD_LIBRARY_PATH": "/tmp/_MEI123", "HOME": "/root"}
    assert for_external_program(env) == {"HOME": "/root"}


def test_macos_and_aix_names_too_and_the_input_is_not_changed():
    env = {
        "DYLD_LIBRARY_PATH": "/tmp/_MEI9",
        "LIBPATH": "/tmp/_MEI9:/usr/lib",
        "LIBPATH_ORIG": "/usr/lib",
    }
    before = dict(env)
    assert for_external_program(env) == {"LIBPATH": "/usr/lib"}
    assert env == before


def test_an_empty_original_stays_empty():
    env = {"LD_LIBRARY_PATH": "/tmp/_MEI1:", "LD_LIBRARY_PATH_ORIG": ""}
    assert for_external_program(env) == {"LD_LIBRARY_PATH": ""}
