"""The model registry's calls of `Client` (docs/api.md): thin, one per route."""

from service.api.wire.registry import AliasMoveRead, ModelRead
from service.api.wire.registry import VersionRead as ModelVersionRead
from service.client.http import Connection


class RegistryCalls(Connection):
    """Models, their immutable versions, and aliases whose every move is kept."""

    def create_model(self, name: str, *, description: str = "") -> ModelRead:
        """A new, empty model named `name` (registering into a model needs it to exist)."""
        response = self.request("POST", "/models", json={"name": name, "description": description})
        return ModelRead.model_validate(response.json())

    def models(self) -> list[ModelRead]:
        """Every model, with its aliases."""
        return self._get_list(ModelRead, "/models")

    def model(self, name: str) -> ModelRead:
        """One model: its version count, latest version and aliases."""
        return self._get(ModelRead, f"/models/{name}")

    def versions(self, name: str) -> list[ModelVersionRead]:
        """The model's versions, oldest first."""
        return self._get_list(ModelVersionRead, f"/models/{name}/versions")

    def register(self, name: str, job_id: int, *, epoch: int | None = None) -> ModelVersionRead:
        """A succeeded job's checkpoint (best, or of `epoch`) as the model's next version."""
        body = {"job_id": job_id} | ({"epoch": epoch} if epoch is not None else {})
        return ModelVersionRead.model_validate(self.request("POST", f"/models/{name}/versions", json=body).json())

    def move_alias(self, name: str, alias: str, version: int) -> AliasMoveRead:
        """Point `alias` at `version` (a promotion, or a rollback)."""
        response = self.request("PUT", f"/models/{name}/aliases/{alias}", json={"version": version})
        return AliasMoveRead.model_validate(response.json())

    def alias_history(self, name: str, alias: str) -> list[AliasMoveRead]:
        """Every move of the alias, oldest first."""
        return self._get_list(AliasMoveRead, f"/models/{name}/aliases/{alias}/history")
