"""Names of the injected dependencies, marked explicitly as Litestar 3 will require."""

from __future__ import annotations

from litestar.di import NamedDependency

from ava_platform.service.auth import Principal
from ava_platform.service.deploy import DeployService
from ava_platform.service.jobs import JobService
from ava_platform.service.schedules import ScheduleService
from ava_platform.service.secrets import SecretService
from ava_platform.service.versions import VersionService
from ava_platform.service.workers import WorkerService

PrincipalDep = NamedDependency[Principal]
WorkersDep = NamedDependency[WorkerService]
JobsDep = NamedDependency[JobService]
SecretsDep = NamedDependency[SecretService]
DeployDep = NamedDependency[DeployService]
VersionsDep = NamedDependency[VersionService]
SchedulesDep = NamedDependency[ScheduleService]
