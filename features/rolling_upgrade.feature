Feature: Rolling upgrade of mywebapp in cluster alfa
  The classic playbook: take the cluster's web hosts out of HAProxy, upgrade the app two
  hosts at a time (a batch that fails stops the rest), check health, put them back, tell ops.

  Background:
    Given the load balancer is lb1
    And I want to update hosts with class roles::web
    And I want to update hosts matching "cluster=alfa"
    And I expect to update 4 hosts

  Scenario: Upgrade cluster alfa to 4.2.6-3.el5
    When I disable the hosts in the load balancer backend app
    Then the hosts should be disabled in the load balancer backend app
    When I deploy revision 4.2.6-3.el5 of mywebapp in batches of 2 with 2 tries
    Then the health check on port 8080 should report version 4.2.6-3.el5 within 100 seconds
    And the service mywebapp should be running
    When I enable the hosts in the load balancer backend app
    Then the hosts should be enabled in the load balancer backend app
    When I notify ops@example.com that "upgraded {count} hosts of cluster alfa to {version}"
