-- GitLab's own numeric ids of the projects its webhooks deliver for, and the project path each
-- stands for: /api/v4/projects/<that id>/… answers for the ids GitLab users already have.
CREATE TABLE gitlab_projects (
    gitlab_id BIGINT PRIMARY KEY,
    path      TEXT   NOT NULL
);
