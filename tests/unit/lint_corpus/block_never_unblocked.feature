Feature: block and forget
  Scenario: update behind a blocked load balancer
    Given the load balancer has ip address 10.231.0.2
    And I want to update hosts with class roles::web
    And I want to pre-discover how many hosts to update
    When I block the load balancer
    Then traffic from the load balancer should be blocked
    When I update the package mywebapp to 4.2.6-3.el5
    Then the package version for mywebapp should be 4.2.6-3.el5
