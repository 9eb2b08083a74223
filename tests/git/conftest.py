from tests.gitservers import daemon_url, http_git, project_repo, served_root, ssh_git  # noqa: F401 - fixtures
