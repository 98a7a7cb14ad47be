Feature: unblock in a cleanup
  Background:
    Given the load balancer has ip address 10.231.0.2
    And I want to update hosts with class roles::web
    And I want to pre-discover how many hosts to update

  Scenario: update
    When I block the load balancer
    Then traffic from the load balancer should be blocked
    When I update the package mywebapp to 4.2.6-3.el5
    Then the package version for mywebapp should be 4.2.6-3.el5

  @cleanup
  Scenario: put the hosts back
    When I unblock the load balancer
    Then traffic from the load balancer should be unblocked
