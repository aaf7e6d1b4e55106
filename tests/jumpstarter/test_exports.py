import jumpstarter


def test_every_public_name_is_exported_and_documented():
    for name in jumpstarter.__all__:
        obj = getattr(jumpstarter, name)
        if callable(obj) and not isinstance(obj, type(jumpstarter)):
            assert obj.__doc__, f"{name} has no docstring"


def test_nothing_private_leaks_into_the_namespace():
    public = {n for n in dir(jumpstarter) if n.isidentifier() and not n.startswith("_")}
    assert public - set(jumpstarter.__all__) <= {"testing"}


def test_the_runtime_never_imports_the_task_layer():
    import pathlib

    root = pathlib.Path(jumpstarter.__file__).parent
    for source in root.rglob("*.py"):
        assert "celery_actors" not in source.read_text(), source
