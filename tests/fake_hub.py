"""A small Hugging Face Hub on loopback: the endpoints `datasets.Dataset.push_to_hub` uses
(repo info and creation, preupload, commit, file tree, file download), with files kept in
memory, so the export's push runs over real HTTP through huggingface_hub unchanged.

README.md is declared `regular` at preupload (its bytes travel base64 in the ndjson commit);
every other file `lfs`: the client asks the LFS batch endpoint, PUTs the bytes to the `basic`
transfer URL it gets, and the commit names the blob by sha256. Set HF_HUB_DISABLE_XET=1 in
the client, or it asks for Xet transfers, which this hub does not speak.
"""

import base64
import hashlib
import json

import yaml
from aiohttp import web
from fake_servers import LoopbackServer


class FakeHub(LoopbackServer):
    def __init__(self, token: str = "hf_test_token"):
        self.token = token
        self.repos: dict[str, dict] = {}  # repo id -> {"private": bool, "files": {path: bytes}}
        self.blobs: dict[str, bytes] = {}  # sha256 -> bytes uploaded through LFS
        self.requests: list[tuple[str, str]] = []
        self.unauthorised = 0

    @property
    def url(self) -> str:
        return self.root

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 30, middlewares=[self._auth])
        r = app.router
        r.add_post("/api/repos/create", self.create)
        r.add_get("/api/datasets/{ns}/{name}", self.info)
        r.add_get("/api/datasets/{ns}/{name}/revision/{rev}", self.info)
        r.add_post("/api/datasets/{ns}/{name}/preupload/{rev}", self.preupload)
        r.add_post("/api/datasets/{ns}/{name}/commit/{rev}", self.commit)
        r.add_get("/api/datasets/{ns}/{name}/tree/{rev:[^/]+}{path:.*}", self.tree)
        r.add_get("/datasets/{ns}/{name}/resolve/{rev}/{path:.*}", self.resolve)
        r.add_post("/api/validate-yaml", self.validate_yaml)
        r.add_post("/datasets/{ns}/{name}.git/info/lfs/objects/batch", self.lfs_batch)
        r.add_put("/lfs-upload/{oid}", self.lfs_put)
        r.add_route("*", "/{tail:.*}", self.missing)
        return app

    @web.middleware
    async def _auth(self, request, handler):
        self.requests.append((request.method, request.path))
        presigned = request.path.startswith("/lfs-upload/")  # like S3's: the URL is the credential
        unknown = handler == self.missing  # e.g. the client's own feature probes: answered 404 as they are
        if not (presigned or unknown) and request.headers.get("authorization") != f"Bearer {self.token}":
            self.unauthorised += 1
            return web.json_response({"error": "Invalid credentials"}, status=401)
        return await handler(request)

    def _repo(self, request) -> str:
        return f"{request.match_info['ns']}/{request.match_info['name']}"

    def _sha(self, repo: str) -> str:
        files = self.repos[repo]["files"]
        return hashlib.sha1(json.dumps(sorted((p, hashlib.sha1(b).hexdigest()) for p, b in files.items())).encode()).hexdigest()

    async def missing(self, request):
        return web.json_response({"error": "not found"}, status=404, headers={"X-Error-Code": "EntryNotFound"})

    async def create(self, request):
        body = await request.json()
        repo = f"{body.get('organization') or 'me'}/{body['name']}" if "/" not in body["name"] else body["name"]
        if repo in self.repos:
            return web.json_response({"error": "You already created this dataset repo", "url": f"{self.url}/datasets/{repo}"},
                                     status=409)
        private = bool(body.get("private")) or body.get("visibility") == "private"
        self.repos[repo] = {"private": private, "files": {}}
        return web.json_response({"url": f"{self.url}/datasets/{repo}", "name": repo})

    async def validate_yaml(self, request):
        """The card's YAML header must parse to a mapping (the hub checks more; this is the floor)."""
        content = (await request.json())["content"]
        header = content.split("---", 2)[1] if content.startswith("---") else ""
        try:
            ok = isinstance(yaml.safe_load(header) or {}, dict)
        except yaml.YAMLError as e:
            return web.json_response({"errors": [{"message": str(e)}]}, status=400)
        return web.json_response({"warnings": []} if ok else {"errors": [{"message": "not a mapping"}]},
                                 status=200 if ok else 400)

    async def info(self, request):
        repo = self._repo(request)
        if repo not in self.repos:
            return web.json_response({"error": "Repository not found"}, status=404,
                                     headers={"X-Error-Code": "RepoNotFound"})
        return web.json_response({"id": repo, "sha": self._sha(repo), "private": self.repos[repo]["private"],
                                  "siblings": [{"rfilename": p} for p in self.repos[repo]["files"]], "cardData": {}})

    async def preupload(self, request):
        body = await request.json()
        return web.json_response({"files": [{"path": f["path"], "shouldIgnore": False,
                                             "uploadMode": "regular" if f["path"] == "README.md" else "lfs"}
                                            for f in body["files"]], "commitOid": self._sha(self._repo(request))})

    async def commit(self, request):
        repo = self._repo(request)
        files = self.repos[repo]["files"]
        for line in (await request.read()).decode().splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] == "lfsFile":
                files[item["value"]["path"]] = self.blobs[item["value"]["oid"]]
            elif item["key"] == "deletedFile":
                files.pop(item["value"]["path"], None)
        sha = self._sha(repo)
        return web.json_response({"commitUrl": f"{self.url}/datasets/{repo}/commit/{sha}", "commitOid": sha})

    async def lfs_batch(self, request):
        body = json.loads(await request.read())  # sent as application/vnd.git-lfs+json
        if "basic" not in body.get("transfers", ["basic"]):
            return web.json_response({"message": "only basic transfers"}, status=422)
        objects = [{"oid": o["oid"], "size": o["size"], "authenticated": True,
                    "actions": {"upload": {"href": f"{self.url}/lfs-upload/{o['oid']}", "header": {}}}}
                   if o["oid"] not in self.blobs else {"oid": o["oid"], "size": o["size"]} for o in body["objects"]]
        return web.json_response({"transfer": "basic", "objects": objects}, content_type="application/vnd.git-lfs+json")

    async def lfs_put(self, request):
        data = await request.read()
        if hashlib.sha256(data).hexdigest() != request.match_info["oid"]:
            return web.json_response({"error": "sha256 mismatch"}, status=400)
        self.blobs[request.match_info["oid"]] = data
        return web.Response(status=200)

    def _entries(self, repo: str, under: str = "", recursive: bool = True) -> list[dict]:
        """The tree below `under`, files and folders, as the hub's tree endpoint lists it."""
        under = under.strip("/")
        prefix = under + "/" if under else ""
        out, folders = [], set()
        for p, b in self.repos[repo]["files"].items():
            if not p.startswith(prefix):
                continue
            parts = p[len(prefix):].split("/")
            folders.update(prefix + "/".join(parts[:i]) for i in range(1, len(parts) if recursive else min(2, len(parts))))
            if recursive or len(parts) == 1:
                out.append({"type": "file", "path": p, "size": len(b), "oid": hashlib.sha1(b).hexdigest()})
        return [{"type": "directory", "path": f, "oid": "0" * 40} for f in sorted(folders)] + out

    async def tree(self, request):
        repo, under = self._repo(request), request.match_info["path"].strip("/")
        if repo not in self.repos:
            return web.json_response({"error": "Repository not found"}, status=404, headers={"X-Error-Code": "RepoNotFound"})
        entries = self._entries(repo, under, request.query.get("recursive", "false").lower() == "true")
        if under and not entries:
            return web.json_response({"error": "Entry not found"}, status=404, headers={"X-Error-Code": "EntryNotFound"})
        return web.json_response(entries)

    async def resolve(self, request):
        repo, path = self._repo(request), request.match_info["path"]
        data = self.repos.get(repo, {}).get("files", {}).get(path)
        if data is None:
            return web.json_response({"error": "Entry not found"}, status=404, headers={"X-Error-Code": "EntryNotFound"})
        sha = self._sha(repo)
        headers = {"X-Repo-Commit": sha, "ETag": f'"{hashlib.sha1(data).hexdigest()}"', "Content-Length": str(len(data))}
        return web.Response(body=data, headers=headers)
