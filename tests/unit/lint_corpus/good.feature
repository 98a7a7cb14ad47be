Feature: every rule followed
  Background:
    Given the load balancer has ip address 10.231.0.2
    And I want to update hosts with class roles::web

  Scenario: firewall and package
    Given I want to update hosts with fact hagroup=a
    And I want to pre-discover how many hosts to update
    When I block the load balancer
    Then traffic from the load balancer should be blocked
    When I update the package mywebapp to 4.2.6-3.el5 in batches of 2
    Then the package version for mywebapp should be 4.2.6-3.el5
    When I unblock the load balancer
    Then traffic from the load balancer should be unblocked

  Scenario: HAProxy and app revision
    Given the load balancer is lb1
    And I expect to update 9 hosts
    When I drain the hosts in the load balancer backend app
    Then the hosts should be drained in the load balancer backend app
    When I deploy revision 4.2.6-3.el5 of mywebapp
    Then the health check on port 8080 should report version 4.2.6-3.el5 within 60 seconds
    When I enable the hosts in the load balancer backend app
    Then the hosts should be enabled in the load balancer backend app
    When I notify ops@example.com that "deployed {version}"
