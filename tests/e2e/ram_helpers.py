"""Helpers for the RAM/STS end-to-end tests: the real Tea SDKs (RAM, STS, KMS) with any
credentials (long-term or STS), the classic SDKs, and the action table from the binary."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from typing import Any, Optional

from kms_helpers import REGION, KmsError, KmsServer, kms_bin

MODULES = {
    "ram": "alibabacloud_ram20150501",
    "sts": "alibabacloud_sts20150401",
    "kms": "alibabacloud_kms20160120",
}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Tea:
    """A Tea client of one product (ACS3 signature; HMAC-SHA1 with v2=True)."""

    def __init__(self, product: str, server: KmsServer, ak: str, sk: str,
                 token: Optional[str] = None, v2: bool = False):
        from alibabacloud_tea_openapi.utils_models import Config

        mod = importlib.import_module(f"{MODULES[product]}.client")
        self.models = importlib.import_module(f"{MODULES[product]}.models")
        cfg = Config(access_key_id=ak, access_key_secret=sk, security_token=token,
                     region_id=REGION, endpoint=f"127.0.0.1:{server.port}", protocol="http",
                     read_timeout=30000, connect_timeout=5000)
        if v2:
            cfg.signature_algorithm = "v2"
        self.client = mod.Client(cfg)
        self.flavour = f"tea-{product}"

    def call(self, action: str, **params: Any) -> dict:
        from alibabacloud_tea_openapi.exceptions import ClientException, ServerException
        from darabonba.runtime import RuntimeOptions

        method = getattr(self.client, _snake(action) + "_with_options")
        req_cls = getattr(self.models, f"{action}Request", None)
        try:
            if req_cls is None:
                resp = method(RuntimeOptions())
            else:
                req = req_cls(**{k: v for k, v in params.items() if v is not None})
                resp = method(req, RuntimeOptions())
        except (ClientException, ServerException) as e:
            data = e.data or {}
            raise KmsError(e.code, e.status_code, data.get("Message"), data.get("RequestId"),
                           self.flavour, data) from e
        assert resp.status_code == 200
        body = resp.body.to_map()
        assert isinstance(body.get("RequestId"), str) and body["RequestId"]
        return body


def err(fn, code: str, status: int) -> KmsError:
    try:
        fn()
    except KmsError as e:
        assert (e.code, e.status) == (code, status), f"expected {code}/{status}, got {e}"
        return e
    raise AssertionError(f"expected {code}/{status}, but the call succeeded")


def action_table() -> list:
    out = subprocess.run([str(kms_bin()), "admin", "action-table"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "1", "Statement": list(statements)})


def allow(action, resource) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def deny(action, resource) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource}


class Ram:
    """Root-credential RAM operations used to set tests up."""

    def __init__(self, server: KmsServer):
        self.api = Tea("ram", server, server.ak, server.sk)

    def user_with_key(self, name: str) -> tuple:
        self.api.call("CreateUser", user_name=name)
        ak = self.api.call("CreateAccessKey", user_name=name)["AccessKey"]
        return ak["AccessKeyId"], ak["AccessKeySecret"]

    def set_policy(self, name: str, document: str, user: Optional[str] = None,
                   role: Optional[str] = None) -> None:
        """Creates custom policy `name` (or a new default version of it) and attaches it."""
        try:
            self.api.call("CreatePolicy", policy_name=name, policy_document=document)
        except KmsError as e:
            assert e.code == "EntityAlreadyExists.Policy", e
            self.api.call("CreatePolicyVersion", policy_name=name, policy_document=document,
                          set_as_default=True,
                          rotate_strategy="DeleteOldestNonDefaultVersionWhenLimitExceeded")
        try:
            if user:
                self.api.call("AttachPolicyToUser", policy_type="Custom", policy_name=name,
                              user_name=user)
            if role:
                self.api.call("AttachPolicyToRole", policy_type="Custom", policy_name=name,
                              role_name=role)
        except KmsError as e:
            assert e.code.startswith("EntityAlreadyExists."), e
