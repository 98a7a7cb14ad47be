Feature: Update the production systems
  The seed deploy: the German web hosts get mywebapp 4.2.6-3.el5 while the load balancer
  sends them no traffic. A host that fails stays blocked; the others keep serving.

  Background:
    Given the load balancer has ip address 10.231.0.2
    And I want to update hosts with class roles::web
    And I want to update hosts with fact country=de
    And I want to pre-discover how many hosts to update

  Scenario: Update the website
    When I block the load balancer
    Then traffic from the load balancer should be blocked
    When I update the package mywebapp to 4.2.6-3.el5
    Then the package version for mywebapp should be 4.2.6-3.el5
    When I restart the service mywebapp unless port 8080 already reports version 4.2.6-3.el5
    Then the health check on port 8080 should report version 4.2.6-3.el5 within 100 seconds
    When I unblock the load balancer
    Then traffic from the load balancer should be unblocked
