"""BFF_SHOPS_FILE itself (issue 17): every problem of the file is one line naming the shop and the key, the
single-shop variables beside it are refused by name, and `python -m app` serves, checks and ends sessions
of the file's shops as real processes."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import (
    SESSION_SECRET,
    ConfigError,
    Process,
    ServerThread,
    bff_command,
    python,
    query_of,
    run,
)
from tests.shops_fixtures import (
    ALPHA,
    BETA,
    SHOPS,
    Table,
    TableValue,
    every_stand_in,
    free_port,
    load_shops,
    shop_table,
    write_shops_file,
)

DEAD_SHOP = "http://127.0.0.1:9"  # discard: nothing answers, and nothing here needs it to


def tables(**changes: dict[str, TableValue | None]) -> dict[str, dict[str, TableValue]]:
    """Both shops' tables, `changes` applied per shop id (None removes a key)."""
    found = {spec.id: shop_table(spec, DEAD_SHOP) for spec in SHOPS}
    for shop_id, change in changes.items():
        for key, value in change.items():
            if value is None:
                del found[shop_id][key]
            else:
                found[shop_id][key] = value
    return found


def problems(path: Path, **deployment: object) -> list[str]:
    """The lines `load_shops` refuses the file with."""
    with pytest.raises(ConfigError) as refused:
        load_shops(path, **{"bff_session_secret": SESSION_SECRET, **deployment})
    head, *lines = str(refused.value).splitlines()
    assert head == "invalid configuration:"
    return [line.strip() for line in lines]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"client_id": None}, ['shop "alpha": client_id is required']),
        ({"colour": "blue"}, ["shop \"alpha\": unknown key 'colour'"]),
        ({"public_url": "ftp://alpha.test"}, ['shop "alpha": public_url must be an absolute http(s) URL']),
        ({"public_url": "http://alpha.test"}, ['shop "alpha": public_url must use https']),
        ({"public_url": "https://alpha.test/?a=1"}, ['shop "alpha": public_url must not carry a query string']),
        ({"public_url": "https://alpha.test/a%20b"}, ['shop "alpha": public_url\'s path must be plain segments']),
        ({"public_url": BETA.public_url}, ['shop "beta": public_url is also shop "alpha"\'s']),
        (
            {"client_secret": "env:SHOPTESTS_NOT_SET_ANYWHERE"},
            ['shop "alpha": client_secret refers to the environment variable SHOPTESTS_NOT_SET_ANYWHERE, which is'],
        ),
        ({"shop_domain": "evil"}, ['shop "alpha": shop_domain must be a domain like example.myshopify.com']),
        ({"rate_limit_login": "lots"}, ['shop "alpha": rate_limit_login must look like `30/minute`']),
        ({"rate_limit_graphql_customer": "lots"}, ['shop "alpha": rate_limit_graphql_customer must look like']),
        ({"pkce": "yes"}, ['shop "alpha": pkce must be true or false']),
        (
            {"allowed_origins": ["https://ok.test", "https://*.test"]},
            ['shop "alpha": allowed_origins must list exact origins'],
        ),
        ({"client_secret": "env:BFF_SESSION_SECRET"}, ['shop "alpha": client_secret may not refer to BFF_SESSION']),
        ({"storefront_token": "env:REDIS_URL"}, ['shop "alpha": storefront_token may not refer to REDIS_URL']),
        ({"public_url": "https://alpha.test:80"}, ['shop "alpha": public_url names port 80 or 443 on the other']),
        ({"public_url": "https://alpha.test/a/.."}, ['shop "alpha": public_url\'s path must be plain segments']),
    ],
    ids=[
        "missing-key",
        "unknown-key",
        "public-url-not-http",
        "public-url-plain-http",
        "public-url-query",
        "public-url-odd-path",
        "duplicate-public-url",
        "env-unset",
        "bad-shop-domain",
        "bad-rate",
        "bad-rate-of-a-longer-name",
        "pkce-not-bool",
        "wildcard-origin",
        "secret-from-the-deployments-own-secret",
        "secret-from-the-redis-url",
        "port-of-the-other-scheme",
        "dot-segment",
    ],
)
def test_each_problem_of_a_shop_is_one_line_naming_the_shop_and_the_key(
    tmp_path: Path, change: dict[str, TableValue | None], expected: list[str]
) -> None:
    said = problems(write_shops_file(tmp_path, tables(alpha=change)))
    assert len(said) == len(expected) and all(line.startswith(e) for line, e in zip(said, expected, strict=True)), said


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[shops.alpha\nclient_id = 1", "is not valid TOML"),
        ("", "lists no shops"),
        ("[other]\nx = 1\n", "unknown top-level key(s) other"),
        ("[shops]\nalpha = 3\n", 'shop "alpha": must be a table'),
    ],
    ids=["not-toml", "no-shops", "stray-table", "shop-not-a-table"],
)
def test_a_file_that_is_no_list_of_shops_says_what_it_is(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "shops.toml"
    path.write_text(text)
    assert any(expected in line for line in problems(path)), problems(path)


@pytest.mark.parametrize("shop_id", ["Alpha", "a_b", "-a", "a" * 25, ""])
def test_a_bad_shop_id_is_named(tmp_path: Path, shop_id: str) -> None:
    path = write_shops_file(tmp_path, {shop_id: shop_table(ALPHA, DEAD_SHOP)})
    assert problems(path) == [f'shop "{shop_id}": the id must be 1 to 24 lower-case letters, digits or -']


def test_every_problem_of_every_shop_is_said_at_once(tmp_path: Path) -> None:
    path = write_shops_file(tmp_path, tables(alpha={"client_id": None, "colour": "blue"}, beta={"pkce": "yes"}))
    said = problems(path)
    assert [line.split(":", 1)[0] for line in said] == ['shop "alpha"', 'shop "alpha"', 'shop "beta"'], said


@pytest.mark.parametrize(
    ("deployment", "expected"),
    [
        ({"bff_session_secret": "short"}, "BFF_SESSION_SECRET must be at least 32 characters"),
        ({"redis_url": "http://redis.test"}, "REDIS_URL: REDIS_URL must start with one of"),
    ],
    ids=["model-check", "field-check"],
)
def test_a_deployment_settings_problem_is_said_once_by_its_variable(
    tmp_path: Path, deployment: dict[str, object], expected: str
) -> None:
    said = problems(write_shops_file(tmp_path, tables()), **deployment)
    assert len(said) == 1 and said[0].startswith(expected), said


def test_secrets_given_as_env_references_are_read_from_the_environment(tmp_path: Path) -> None:
    path = write_shops_file(tmp_path, tables(alpha={"client_secret": "env:SHOPTESTS_ALPHA_SECRET"}))
    secret = "alpha.shopify_client_secret.get_secret_value()"
    done = run(
        python("-c", f"from app.shops import load_configuration as c; alpha = c().by_id('alpha'); print({secret})"),
        cwd=tmp_path,
        env={
            "BFF_SHOPS_FILE": str(path),
            "BFF_SESSION_SECRET": SESSION_SECRET,
            "SHOPTESTS_ALPHA_SECRET": "from-the-env-7f3a",
        },
    )
    assert done.stdout.strip() == "from-the-env-7f3a", done.stderr


# --- real processes -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stand_ins() -> Iterator[dict[str, ServerThread]]:
    with every_stand_in() as servers:
        yield servers


def serving_env(path: Path, redis_url: str) -> dict[str, str]:
    return {
        "BFF_SHOPS_FILE": str(path),
        "REDIS_URL": redis_url,
        "BFF_SESSION_SECRET": SESSION_SECRET,
        "BFF_REDIS_PREFIX": f"t{secrets.token_hex(4)}:",
        "BFF_WORKERS": "1",
    }


def served_tables(stand_ins: dict[str, ServerThread]) -> dict[str, Table]:
    return {spec.id: shop_table(spec, stand_ins[spec.id].url) for spec in SHOPS}


def test_serve_answers_each_shop_at_its_address_and_no_other(
    tmp_path: Path, stand_ins: dict[str, ServerThread], redis_url: str
) -> None:
    path = write_shops_file(tmp_path, served_tables(stand_ins))
    port = free_port()
    with Process("bff-shops", bff_command(port), port=port, workdir=tmp_path, env=serving_env(path, redis_url)) as bff:
        bff.wait_ok("/readyz")
        logins = {spec.id: httpx.get(f"{bff.url}{spec.path}/auth/login", headers={"Host": spec.host}) for spec in SHOPS}
        unknown = httpx.get(f"{bff.url}/auth/login", headers={"Host": "evil.test"})
        ready = httpx.get(f"{bff.url}/readyz", headers={"Host": ALPHA.host})
    assert {shop_id: query_of(r.headers["location"])["client_id"] for shop_id, r in logins.items()} == {
        ALPHA.id: ALPHA.client_id,
        BETA.id: BETA.client_id,
    }
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_shop")
    assert set(ready.json()["shops"]) == {ALPHA.id}  # a shop's host is told its own shop only


def test_serve_exits_2_with_one_line_per_problem_of_a_bad_file(tmp_path: Path, redis_url: str) -> None:
    path = write_shops_file(tmp_path, tables(alpha={"client_id": None}, beta={"colour": "blue"}))
    port = free_port()
    done = run(bff_command(port), cwd=tmp_path, env=serving_env(path, redis_url))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2
    assert lines[0] == "invalid configuration:" and [line.strip()[:22] for line in lines[1:]] == [
        'shop "alpha": client_i',
        'shop "beta": unknown k',
    ], done.stderr


def test_serve_names_a_missing_deployment_variable_once(tmp_path: Path, redis_url: str) -> None:
    env = serving_env(write_shops_file(tmp_path, tables()), redis_url)
    del env["BFF_SESSION_SECRET"]
    done = run(bff_command(free_port()), cwd=tmp_path, env=env)
    assert (done.returncode, done.stderr.strip().splitlines()[1:]) == (
        2,
        ["  BFF_SESSION_SECRET: is required but not set"],
    ), done.stderr


@pytest.mark.parametrize("where", ["environment", ".env"])
def test_single_shop_variables_beside_a_shops_file_are_refused_by_name(
    tmp_path: Path, redis_url: str, where: str
) -> None:
    path = write_shops_file(tmp_path, tables())
    stray = {"SHOPIFY_CLIENT_ID": "x", "BFF_PUBLIC_URL": "https://one.test"}
    env = serving_env(path, redis_url)
    if where == ".env":
        (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in stray.items()))
    else:
        env.update(stray)
    done = run(bff_command(free_port()), cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert [line.strip().split(":")[0] for line in done.stderr.strip().splitlines()[1:]] == [
        "SHOPIFY_CLIENT_ID",
        "BFF_PUBLIC_URL",
    ], done.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "name one with --shop (alpha, beta)"),
        (["--shop", "gamma"], "no shop 'gamma' in"),
    ],
    ids=["no-shop", "unknown-shop"],
)
def test_end_sessions_with_a_shops_file_needs_one_of_its_shops(
    tmp_path: Path, redis_url: str, args: list[str], expected: str
) -> None:
    path = write_shops_file(tmp_path, tables())
    done = run(
        python("-m", "app", "end-sessions", "--sub", "gid://shopify/Customer/1", *args),
        cwd=tmp_path,
        env=serving_env(path, redis_url),
    )
    assert (done.returncode, expected in done.stderr) == (2, True), done.stderr


@pytest.fixture
def doctor_output(tmp_path: Path, stand_ins: dict[str, ServerThread], redis_url: str) -> tuple[int, str, str]:
    """`python -m app doctor` over alpha's stand-in and a beta nobody answers for: (exit code, output, prefix)."""
    path = write_shops_file(tmp_path, {**served_tables(stand_ins), BETA.id: shop_table(BETA, DEAD_SHOP)})
    env = serving_env(path, redis_url)
    done = run(python("-m", "app", "doctor"), cwd=tmp_path, env=env)
    return done.returncode, done.stdout, env["BFF_REDIS_PREFIX"]


def shop_blocks(output: str) -> dict[str, str]:
    """Doctor's section of each shop, by shop id."""
    return {block.split('"')[1]: block for block in output.split("\n\n") if block.startswith("Shop ")}


def test_doctor_checks_every_shop_and_fails_for_the_one_that_is_down(doctor_output: tuple[int, str, str]) -> None:
    code, output, _ = doctor_output
    failing = {shop_id: "FAIL" in block for shop_id, block in shop_blocks(output).items()}
    assert (code, failing) == (1, {"alpha": False, "beta": True}), output


def test_doctor_names_a_shops_settings_by_their_keys_in_the_file(doctor_output: tuple[int, str, str]) -> None:
    _, output, _ = doctor_output
    beta = shop_blocks(output)["beta"]
    assert "check shop_domain" in beta and "SHOPIFY_" not in "".join(shop_blocks(output).values()), output


def test_doctor_tells_the_deployments_redis_prefix_and_each_shops_records(
    doctor_output: tuple[int, str, str],
) -> None:
    _, output, prefix = doctor_output
    assert f"this deployment's keys start with {prefix!r}, each shop's with {prefix}<shop id>:" in output, output
    assert [line.split('"')[1] for line in output.splitlines() if "session record(s)" in line] == ["alpha", "beta"]
