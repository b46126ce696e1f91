DROP TABLE deployment_console;
DROP TABLE deployment_events;
DROP TABLE deployments;
DROP TYPE deployment_state;
DROP TABLE quotas;
DROP TABLE agent_enrollments;
DROP TABLE agents;
